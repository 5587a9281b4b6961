"""One stage of a build: its state (state.py), each instruction resolved into an operation (ops.py: the
config-only ones; run.py: RUN; copy_add.py: COPY and ADD), and the executor that runs them in turn, looks them
up in the step cache and commits their layers (executor.py). Nothing is imported here: each module is imported
by its own name."""
