"""Names shared by every stage: the channels a run records and the schedule families.

One definition each; every module that needs them imports them from here.
"""

#: The channels of a run and of a model, in this order: training loss, natural log of the
#: learning rate, validation metric.
CHANNELS = ("loss", "log_lr", "metric")

#: The parametric schedule families of a sweep (`keras_lode.schedules.make_schedule`).
FAMILIES = ("cosine", "onecycle", "constant", "step", "linear", "wsd")

#: The paper's four families: the default of the synthetic sweep (`synthetic_runs`).
PAPER_FAMILIES = FAMILIES[:4]
