"""Training: the config (:mod:`.config`), the Trainer's loop of events (:mod:`.trainer`, :mod:`.events`),
its learning-rate horizons (:mod:`.lr_schedule`), random streams (:mod:`.rng`), resume rules
(:mod:`.resume`) and torchrun jobs (:mod:`.distributed`)."""
