from stablenew.cli import main

main()
