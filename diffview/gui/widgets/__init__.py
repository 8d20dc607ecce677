"""Small building blocks the views share: image grids, captions and readouts, players, a points canvas."""
