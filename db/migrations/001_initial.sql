-- 001: the experiment database's first schema.
-- Times are UTC TIMESTAMPs; scores are fractions in [0, 1]; sizes are bytes and parameter counts.
-- Trials are keyed by (sweep, trial_id): Ray's trial ids are unique within an experiment, and keying by the sweep as
-- well means two sweeps that number their trials the same way can never overwrite each other.

CREATE TABLE sweeps (
    name          VARCHAR PRIMARY KEY,
    spec          JSON,
    started_at    TIMESTAMP,
    finished_at   TIMESTAMP,
    status        VARCHAR,            -- running | finished | error | interrupted | ...
    code_version  VARCHAR,
    storage_path  VARCHAR
);

CREATE TABLE trials (
    sweep            VARCHAR NOT NULL,
    trial_id         VARCHAR NOT NULL,
    stage            VARCHAR NOT NULL,   -- distill | compress
    parent_trial_id  VARCHAR,            -- the distilled trial a compress trial started from
    task             VARCHAR NOT NULL,
    arch             VARCHAR NOT NULL,
    embedding        VARCHAR NOT NULL,
    emb_dim          INTEGER NOT NULL,
    vocab_size       INTEGER,
    alpha            DOUBLE,
    temperature      DOUBLE,
    bootstrap        BOOLEAN NOT NULL,
    seed             BIGINT NOT NULL,
    pooling          VARCHAR,
    pruning          VARCHAR,            -- describe() string of the pruning applied, NULL = not pruned
    quantization     VARCHAR,            -- describe() string of the quantization applied, NULL = not quantized
    status           VARCHAR NOT NULL,   -- finished | error
    error            VARCHAR,
    config           JSON,               -- the full trial config
    started_at       TIMESTAMP,
    finished_at      TIMESTAMP,
    seconds          DOUBLE,
    checkpoint_path  VARCHAR,
    recorded_at      TIMESTAMP NOT NULL,
    PRIMARY KEY (sweep, trial_id)
);

CREATE TABLE results (
    sweep                VARCHAR NOT NULL,
    trial_id             VARCHAR NOT NULL,
    score                DOUBLE,         -- the task's headline metric (mean over its eval splits)
    accuracy             DOUBLE,
    f1                   DOUBLE,
    accuracy_matched     DOUBLE,
    accuracy_mismatched  DOUBLE,
    best_epoch           INTEGER,
    epochs               INTEGER,
    params               BIGINT,
    params_embedding     BIGINT,
    params_encoder       BIGINT,
    params_classifier    BIGINT,
    nonzero_params       BIGINT,
    disk_bytes           BIGINT,
    gzip_bytes           BIGINT,
    ideal_bytes          BIGINT,
    metrics              JSON,           -- every metric reported, including those without a column
    sizes                JSON,           -- every size measure reported
    PRIMARY KEY (sweep, trial_id)
);

CREATE TABLE epochs (
    sweep               VARCHAR NOT NULL,
    trial_id            VARCHAR NOT NULL,
    epoch               INTEGER NOT NULL,
    train_loss          DOUBLE,
    score               DOUBLE,
    seconds             DOUBLE,
    samples_per_second  DOUBLE,
    metrics             JSON,
    PRIMARY KEY (sweep, trial_id, epoch)
);

-- Reference models: rows quoted from the thesis (sweep NULL) and teachers a sweep measured (source 'measured').
CREATE TABLE baselines (
    sweep                VARCHAR,        -- NULL: applies to every sweep
    task                 VARCHAR NOT NULL,
    name                 VARCHAR NOT NULL,
    source               VARCHAR NOT NULL,  -- 'thesis table 7.5' | 'measured'
    score                DOUBLE,
    accuracy             DOUBLE,
    f1                   DOUBLE,
    accuracy_matched     DOUBLE,
    accuracy_mismatched  DOUBLE,
    params               BIGINT,
    disk_bytes           BIGINT,
    gzip_bytes           BIGINT,
    note                 VARCHAR,
    recorded_at          TIMESTAMP
);

-- Thesis table 7.5 (dev scores; sizes in MB = 1e6 bytes, single-sentence size for SST-2, sentence-pair size for
-- QQP and MNLI) with parameter counts from table 7.1. MNLI's score is the mean of matched and mismatched accuracy.
INSERT INTO baselines (sweep, task, name, source, score, accuracy, f1, params, disk_bytes, note) VALUES
    (NULL, 'sst2', 'RoBERTa-large',      'thesis table 7.5', 0.9656, 0.9656, NULL,   360000000, 1426000000, 'reference teacher'),
    (NULL, 'qqp',  'RoBERTa-large',      'thesis table 7.5', 0.9215, 0.9215, 0.8958, 360000000, 1426000000, 'reference teacher'),
    (NULL, 'mnli', 'RoBERTa-large',      'thesis table 7.5', 0.9033, 0.9033, NULL,   360000000, 1426000000, 'reference teacher; mean of matched/mismatched'),
    (NULL, 'sst2', 'TinyBERT-6',         'thesis table 7.5', 0.930,  0.930,  NULL,    67000000,  268000000, NULL),
    (NULL, 'qqp',  'TinyBERT-6',         'thesis table 7.5', 0.911,  0.911,  0.880,   67000000,  268000000, NULL),
    (NULL, 'mnli', 'TinyBERT-6',         'thesis table 7.5', 0.845,  0.845,  NULL,    67000000,  268000000, 'mean of matched/mismatched'),
    (NULL, 'sst2', 'GLUE BiLSTM+GloVe',  'thesis table 7.5', 0.875,  0.875,  NULL,   740000000, 2950000000, NULL),
    (NULL, 'qqp',  'GLUE BiLSTM+GloVe',  'thesis table 7.5', 0.853,  0.853,  0.820,  740000000, 2968000000, NULL),
    (NULL, 'mnli', 'GLUE BiLSTM+GloVe',  'thesis table 7.5', 0.667,  0.667,  NULL,   740000000, 2968000000, 'mean of matched/mismatched'),
    (NULL, 'sst2', 'GLUE BiLSTM+ELMo',   'thesis table 7.5', 0.915,  0.915,  NULL,   170000000,  684000000, NULL),
    (NULL, 'qqp',  'GLUE BiLSTM+ELMo',   'thesis table 7.5', 0.880,  0.880,  0.843,  170000000,  703000000, NULL),
    (NULL, 'mnli', 'GLUE BiLSTM+ELMo',   'thesis table 7.5', 0.686,  0.686,  NULL,   170000000,  703000000, 'mean of matched/mismatched');

-- Small key/value facts about the database itself (e.g. the hash of the view definitions last installed).
CREATE TABLE meta (
    key    VARCHAR PRIMARY KEY,
    value  VARCHAR
);
