from scs_django.cli import main

main()
