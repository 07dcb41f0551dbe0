from threadline.cli.main import run

run()
