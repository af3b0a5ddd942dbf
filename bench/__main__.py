import sys

if sys.argv[1:2] == ["chat"]:
    from .chat import main

    raise SystemExit(main(sys.argv[2:]))

if sys.argv[1:2] == ["health"]:
    from .health import main

    raise SystemExit(main(sys.argv[2:]))

from .run import main

raise SystemExit(main())
