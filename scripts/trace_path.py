"""How deep a call goes: the xpnet modules and functions a whole command or fit enters (docs/layout.md).

Counts every Python function call into a file under ``src/xpnet`` with ``sys.setprofile`` while the work runs,
imports excluded (a module's top level is not counted, nor anything before the profiler starts).

    python scripts/trace_path.py train    # xpnet train --dataset digits --epochs 1
    python scripts/trace_path.py fit      # MLPClassifier(max_iter=1).fit on scikit-learn's digits
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import warnings

import xpnet

SRC = os.path.dirname(os.path.realpath(xpnet.__file__))


def traced(work) -> tuple[collections.Counter, set]:
    """(calls per module, the functions entered) while ``work()`` runs."""
    modules, functions = collections.Counter(), set()

    def profile(frame, event, arg):
        code = frame.f_code
        if event == "call" and code.co_filename.startswith(SRC) and code.co_name != "<module>":
            modules[os.path.relpath(code.co_filename, SRC)] += 1
            functions.add((code.co_filename, code.co_firstlineno))

    sys.setprofile(profile)
    try:
        work()
    except SystemExit:
        pass
    finally:
        sys.setprofile(None)
    return modules, functions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("train", "fit"))
    what = parser.parse_args().what
    if what == "train":
        from xpnet import train

        def work():
            train.main(["--dataset", "digits", "--epochs", "1"])
    else:
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        estimator = xpnet.MLPClassifier(max_iter=1)
        warnings.simplefilter("ignore")  # the ConvergenceWarning of one epoch

        def work():
            estimator.fit(X, y)

    modules, functions = traced(work)
    print(f"{what}: {len(modules)} modules, {len(functions)} functions")
    for name, calls in sorted(modules.items()):
        print(f"  {name:34} {calls:5d} calls")


if __name__ == "__main__":
    main()
