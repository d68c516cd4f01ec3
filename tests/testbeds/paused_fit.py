"""Run a tutorial script with its model's training held at the start until a test lets it go.

    python tests/testbeds/paused_fit.py GATE train_rfc.py [its flags]

When the script calls its pipeline's `fit` (after it has logged its params and training data),
this creates the file GATE and waits while it exists; the test applies its fault (a server
killed, a database stopped) and then deletes GATE, and the training goes on as usual. Nothing
else changes: the real script, the real MLflow. Without the hold, a test that watched for the
last request before `fit` could land its fault seconds late on two busy cores, after the model
was already logged (CI saw it once).
"""

import runpy
import sys
import time
from pathlib import Path

from sklearn.pipeline import Pipeline

gate, script, *flags = sys.argv[1:]
gate = Path(gate)
train = Pipeline.fit


def held_fit(self, *args, **kwargs):
    gate.touch()
    while gate.exists():
        time.sleep(0.05)
    return train(self, *args, **kwargs)


Pipeline.fit = held_fit
sys.argv = [script, *flags]
sys.path[0] = str(Path(script).resolve().parent)  # its modules, as `python script` has them
runpy.run_path(script, run_name="__main__")
