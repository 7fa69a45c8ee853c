"""The `airlora` command line: the top floor, one module per verb under airlora/commands/."""
