"""Long work and its products: jobs on threads or Dask, sweeps and their caches, warming, exports."""
