"""`make bench`: Inlet's figures against minimal references measured in the same run."""
