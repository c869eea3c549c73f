"""Exit codes of the command-line tools, in one place.

`scalinglab-train` (one run): OK, CONFIG before training, FAILED when the job failed or
diverged, SIGTERM or INTERRUPTED (Ctrl-C) when it was stopped. `scalinglab-train -m` (a sweep):
OK when every job completed, PARTIAL when some did, FAILED when none did, CONFIG when none did
and every failure was a config error. `scalinglab-fit`, `-report` and `-export`: CONFIG for bad
input.
"""

OK = 0
FAILED = 1
CONFIG = 2
PARTIAL = 3
INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it
SIGTERM = 143  # 128 + SIGTERM
