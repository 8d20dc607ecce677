"""Work off the GUI thread: QThreads from one factory (:mod:`.threads`), and the one job abstraction every
background computation uses, training included (:mod:`.jobs`: Job, Jobs, stop_everything)."""
