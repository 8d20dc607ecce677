"""Files: atomic writes (:mod:`.files`), run folders and checkpoints (:mod:`.checkpoint`), and image
export (:mod:`.export`). Knows nothing of models or training: the layers above use it."""
