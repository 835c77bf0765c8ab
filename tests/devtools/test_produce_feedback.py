"""``flinkdl produce --feedback-topic``: argument checks."""


def test_produce_feedback_needs_the_generator_and_json(capsys):
    from flinkdl import cli

    args = cli.parser().parse_args(["produce", "--bootstrap", "127.0.0.1:1", "--topic", "i", "--feedback-topic", "c",
                                    "--generator", "--format", "csv", "--delay-scale", "0.5", "--end-tick-s", "60"])
    assert (args.feedback_topic, args.delay_scale, args.end_tick_s) == ("c", 0.5, 60.0)
    assert args.func(args) == 2 and "--format json" in capsys.readouterr().err
