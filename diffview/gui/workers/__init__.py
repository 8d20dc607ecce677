"""Work off the GUI thread: QThreads from one factory (:mod:`.threads`), cancellable jobs with progress
(:mod:`.jobs`) and one-shot tasks (:mod:`.tasks`)."""
