"""array-api-strict: the standard and nothing more, to catch non-standard calls; slow, CPU only. Its simulated
devices (``"device1"``...) let tests check without a GPU that every array stays on its device."""

import numpy as np

from . import Backend, BackendSpec, Probe


def make(device: str) -> Backend:
    xp = SPEC.load()
    cpu = xp.Device("CPU_DEVICE")
    dev = cpu if device == "cpu" else xp.Device(device)  # make_backend passes only the names of extra_devices
    return Backend("array-api-strict", xp, dev, device, lambda a: np.asarray(a.to_device(cpu)))


def probe() -> Probe:
    import array_api_strict

    return Probe("array-api-strict", True, f"array-api-strict {array_api_strict.__version__}", ("cpu",))


def device_of(device) -> str:
    return "cpu" if device._device == "CPU_DEVICE" else device._device


SPEC = BackendSpec("array-api-strict", make, probe, 4, extra_devices=("device1", "device2"), device_of=device_of)
