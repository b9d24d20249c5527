"""Backend-specific fast paths, each overriding the reference training step for one array library.

A fast step has the signature `xpnet.nn.step.StepFn` and must agree with `xpnet.nn.step.reference_step`
(the tests compare them). The reference math stays the definition; these only make it cheaper on one
library. A backend module names its fast step in its ``SPEC.fast_step``; these modules are the one place
below ``nn/`` that imports the math, since each re-implements it.
"""
