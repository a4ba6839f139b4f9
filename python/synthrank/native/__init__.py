"""The native core's typed Python wrappers, each with its pure-Python twin in `reference`.

`_backend` is the only module that imports `synthrank._native`; it picks the native core or the twin
(SYNTHRANK_BACKEND, or a `backend=` argument)."""
