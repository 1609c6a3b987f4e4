from cachefleet.cli.main import main

main()
