//! Batches split across machines: `--shard I/N` takes a deterministic slice of the sorted,
//! expanded input list, so N runs with I = 0..N-1 (a Slurm array, a Kubernetes Indexed Job)
//! together process every file exactly once (docs/scale-out.md).

use std::path::PathBuf;

/// One of `count` shards (0-based `index`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// `I/N` with `0 <= I < N`.
    fn from_str(s: &str) -> Result<Shard, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("--shard '{s}': give I/N (0-based, e.g. 0/4) or auto"))?;
        let parse = |v: &str, what: &str| {
            v.trim()
                .parse::<usize>()
                .map_err(|_| format!("--shard '{s}': {what} '{v}' is not a whole number"))
        };
        let (index, count) = (parse(i, "index")?, parse(n, "count")?);
        if count == 0 || index >= count {
            return Err(format!(
                "--shard '{s}': the index is 0-based and below the count (0/{n} .. {}/{n})",
                count.max(1) - 1
            ));
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// The shard of this task from the scheduler's environment: Slurm job arrays
    /// (`SLURM_ARRAY_TASK_ID` - `SLURM_ARRAY_TASK_MIN` of `SLURM_ARRAY_TASK_COUNT`), or a
    /// Kubernetes Indexed Job (`JOB_COMPLETION_INDEX` of `shards`, from `--shards N`).
    pub fn from_env(shards: Option<usize>, var: impl Fn(&str) -> Option<String>) -> Result<Shard, String> {
        let num = |name: &str| -> Result<Option<usize>, String> {
            var(name)
                .map(|v| {
                    v.trim()
                        .parse::<usize>()
                        .map_err(|_| format!("--shard auto: {name}='{v}' is not a whole number"))
                })
                .transpose()
        };
        let check = |index: usize, count: usize, from: &str| {
            if count == 0 || index >= count {
                Err(format!("--shard auto: {from} gives shard {index} of {count}"))
            } else {
                Ok(Shard { index, count })
            }
        };
        if let Some(id) = num("SLURM_ARRAY_TASK_ID")? {
            let count = num("SLURM_ARRAY_TASK_COUNT")?
                .or(shards)
                .ok_or("--shard auto: SLURM_ARRAY_TASK_ID is set but not SLURM_ARRAY_TASK_COUNT (give --shards N)")?;
            let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let index = id
                .checked_sub(min)
                .ok_or_else(|| format!("--shard auto: SLURM_ARRAY_TASK_ID {id} is below SLURM_ARRAY_TASK_MIN {min}"))?;
            return check(index, count, "Slurm");
        }
        if let Some(index) = num("JOB_COMPLETION_INDEX")? {
            let count =
                shards.ok_or("--shard auto: JOB_COMPLETION_INDEX is set; give the job's completions as --shards N")?;
            return check(index, count, "JOB_COMPLETION_INDEX");
        }
        Err("--shard auto: neither SLURM_ARRAY_TASK_ID (a Slurm job array) nor JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) is set; give --shard I/N".into())
    }

    /// This shard's files: the list sorted (and duplicates dropped), then the `index`-th of
    /// `count` contiguous slices of as equal a length as can be (the first `len % count`
    /// slices one longer).
    pub fn select(&self, mut files: Vec<PathBuf>) -> Vec<PathBuf> {
        files.sort();
        files.dedup();
        let n = files.len();
        let start = self.index * n / self.count;
        let end = (self.index + 1) * n / self.count;
        files.into_iter().skip(start).take(end - start).collect()
    }
}
