"""Agreement: every backend against the NumPy float64 reference, with the one table of tolerances."""
