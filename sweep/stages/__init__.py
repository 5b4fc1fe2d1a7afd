"""The stages of a sweep: the stage contract (``base``), the trial stages, the steps that build the assets
(``study_stages``), their order (``registry``) and the driver that runs them (``run``)."""
