# -*- coding: utf-8 -*-
"""Stand-in for the get-pip.py bootstrap that ansible-test downloads from its own file
host, which a machine that reaches only package registries cannot fetch. It does the same
job from what is at hand: pip from the standard library's ensurepip, then the requested
packages from PyPI. scripts/test.sh puts it where ansible-test looks for its cached copy."""

import ensurepip
import os
import subprocess
import sys

GET_PIP_ONLY = ('--no-setuptools', '--no-wheel')

# ensurepip switches pip's configuration off in this process's environment; the install
# from PyPI must see the machine's pip configuration (index, CA bundle) as it was.
environment = dict(os.environ)
ensurepip.bootstrap(upgrade=True)
arguments = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
sys.exit(subprocess.call([sys.executable, '-m', 'pip', 'install'] + arguments, env=environment))
