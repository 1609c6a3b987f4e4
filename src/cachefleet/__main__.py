from cachefleet.cli.main import main

# As the installed script is named, whatever python -m makes of argv[0] (usage lines, completion).
main(prog_name="cachefleet")
