from einvoice.cli import main

main()
