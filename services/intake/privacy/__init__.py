"""A person's data: erasure (``erasure``, with the steps other services contribute) and the
quarantine of suspected spam (``quarantine``)."""
