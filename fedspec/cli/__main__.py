from fedspec.cli.app import main

main()
