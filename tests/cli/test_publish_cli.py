"""``flinkdl publish list|rollback|resume`` on a published directory."""

from __future__ import annotations

import json

from flinkdl.cli import main
from flinkdl.publish import layout


def test_list_rollback_resume(tmp_path, capsys):
    base = tmp_path / "pub"
    for v, auc in ((3, 0.70), (5, 0.72), (9, 0.60)):
        layout.write_version(base, v, lambda d: None, {"metrics": {"auc": auc, "calibration": 1.0},
                                                      "formats": ["saved_model"]})
    assert main(["publish", "list", "--dir", str(base), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["served"] == 9 and [r["version"] for r in doc["versions"]] == [3, 5, 9] and doc["held"] is None
    assert main(["publish", "rollback", "5", "--dir", str(base)]) == 0
    assert "serving 5; moved [9]" in capsys.readouterr().out
    assert layout.latest(base) == 5 and layout.held(base) == 5
    assert main(["publish", "rollback", "9", "--dir", str(base)]) == 2
    assert "version 9 is not published" in capsys.readouterr().err
    assert main(["publish", "list", "--dir", str(base)]) == 0
    assert "serving 5 (held at 5)" in capsys.readouterr().out
    assert main(["publish", "resume", "--dir", str(base)]) == 0 and layout.held(base) is None
