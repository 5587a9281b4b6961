"""The Dockerfile front end: parsing (`parser`), the typed instructions it produces (`instructions`) and
docker's variable expansion (`expand`), which the executor applies instruction by instruction."""
