from agriseg.cli.main import cli

cli()
