from marketboss.cli import main

main()
