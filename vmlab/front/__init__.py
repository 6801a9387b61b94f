"""The front: the ``vmlab`` command, the demo, scenarios runner, live views,
plots, the benchmark and the pytest plugin. Built on the core and replay."""
