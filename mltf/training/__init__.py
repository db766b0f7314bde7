"""Training machinery: the trainer (``train``, gin's ``mltf.train``), the run
folder and its kill-safe state (``run_dir``, ``run_state``, ``run_files``,
``model_state``), the callbacks, and gin's setup. The CLI is ``mltf.train``.
"""
