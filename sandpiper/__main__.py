from sandpiper.cli import main

main()
