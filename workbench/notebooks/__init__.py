"""Running notebooks: papermill execution, warm kernels, Dask dispatch, and the helper API notebooks import.

Kept import-light on purpose: notebooks run ``from workbench.notebooks import helpers`` (or its former
name ``api``) in every kernel, so
this package's ``__init__`` must not pull in papermill, jupyter_client or Dask.
"""
