import os
import sys

# harness.py and the stand-in are imported by plain name from every suite.
sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
