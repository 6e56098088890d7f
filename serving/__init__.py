"""HTTP scoring service, batch scoring, monitoring and the `crmscore` command line."""
