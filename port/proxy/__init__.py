"""The app origins' half of Port's server: ``gate`` checks who enters which Setup and
answers for it, ``relay`` carries HTTP and websockets to the serving Pod. See
docs/apps.md."""
