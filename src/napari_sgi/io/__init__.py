"""Reading microscopy inputs, the .sgi container and exports."""
