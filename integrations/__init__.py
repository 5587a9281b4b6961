"""dockyard integrations: thin adapters from CI platforms to the dockyard core."""
