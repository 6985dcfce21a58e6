import sys

from logbook.pump.process import main

sys.exit(main(sys.argv[1:]))
