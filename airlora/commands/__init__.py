"""One module per `airlora` verb: add_arguments(parser) and run(args) -> exit code."""
