from readerai.cli import main

main()
