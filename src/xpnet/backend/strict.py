"""array-api-strict: the standard and nothing more, to catch non-standard calls; slow, CPU only. Its simulated
devices (``"device1"``...) let tests check without a GPU that every array stays on its device."""

from __future__ import annotations

import numpy as np

from ..errors import BackendError
from . import Backend, BackendSpec, Probe, import_library


def make(device: str) -> Backend:
    xp = import_library(SPEC)
    cpu = xp.Device("CPU_DEVICE")
    if device == "cpu":
        dev, name = cpu, "cpu"
    else:
        try:
            dev, name = xp.Device(device), device
        except ValueError as e:
            raise BackendError(f"array-api-strict has no device {device!r} ({e})") from None
    return Backend("array-api-strict", xp, dev, name, lambda a: np.asarray(a.to_device(cpu)))


def probe() -> Probe:
    import array_api_strict

    return Probe("array-api-strict", True, f"array-api-strict {array_api_strict.__version__}", ("cpu",))


SPEC = BackendSpec(
    name="array-api-strict", module="array_api_strict", kinds=("cpu",), make=make, probe=probe,
    install_hint="pip install array-api-strict", order=4, extra_devices=("device1", "device2"),
    device_of=lambda d: "cpu" if d._device == "CPU_DEVICE" else d._device,
)  # fmt: skip
