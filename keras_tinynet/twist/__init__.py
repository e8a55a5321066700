"""The paper's method as a tool: twist resolution, depth and width of a base for FLOPs or latency budgets.

`sampling` (which (r, d, w) meet a budget), `costs` (FLOPs, measured latency, bytes), `trials` (train one
configuration), `search` (the Ray Tune driver), `report` (table and plots) and `curves` (the fitted r(c), d(c)
and the file the builders read). `sampling` and `curves` import neither TensorFlow nor Ray.
"""
