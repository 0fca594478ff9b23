"""The SGI engine: rasterizer, seed model, entropy model and fitting. No Qt or napari here."""
