//! Background threads of the server (the message index checkpointer, the next log
//! segment's preparer) take only the CPU and the disk that requests leave.

/// `ioprio_set`'s terms (linux/ioprio.h): `who` names a thread, and the class sits above
/// the level's 13 bits.
#[cfg(target_os = "linux")]
const IOPRIO_WHO_PROCESS: libc::c_long = 1;
#[cfg(target_os = "linux")]
const IOPRIO_CLASS_IDLE: libc::c_long = 3;
#[cfg(target_os = "linux")]
const IOPRIO_CLASS_SHIFT: libc::c_long = 13;

/// Makes the calling thread background work that takes only the CPU and the disk that
/// requests leave: the idle scheduling class (`SCHED_IDLE`) and the idle I/O class. At
/// nice 19 the message index checkpoint still took a whole core for 10-20 ms at a time
/// while sends waited (perf during sqs-send paced at 40,000 a second); in the idle class
/// it runs only where nothing else is runnable. Both settings belong to the thread (`0`
/// is the calling thread), not to the whole process. Falls back to nice 19 where the
/// idle class is refused.
pub fn lower_this_thread_priority() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid, initialized sched_param that outlives the call, which
        // only reads it; pid 0 is the calling thread, whose scheduling class alone changes.
        let idle = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } == 0;
        if !idle {
            // SAFETY: setpriority takes three plain integers and changes only the
            // scheduling weight of the calling thread; no memory is shared with the call.
            unsafe {
                libc::setpriority(libc::PRIO_PROCESS, 0, 19);
            }
        }
        // SAFETY: ioprio_set takes three plain integers and changes only the I/O class of
        // the calling thread (who 0); no memory is shared with the call. A kernel without
        // it answers ENOSYS, which leaves the thread as it was.
        unsafe {
            libc::syscall(
                libc::SYS_ioprio_set,
                IOPRIO_WHO_PROCESS,
                0 as libc::c_long,
                IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_os = "linux")]
    use super::*;

    /// The thread that asks is put in both idle classes; the thread beside it is not.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_background_thread_is_in_the_idle_classes_and_only_it() {
        // SAFETY: both calls take plain integers (0: the calling thread) and only read
        // its scheduling class and I/O priority.
        let classes = || unsafe {
            let io = libc::syscall(libc::SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0 as libc::c_long);
            (libc::sched_getscheduler(0), io >> IOPRIO_CLASS_SHIFT)
        };
        let background = std::thread::spawn(move || {
            lower_this_thread_priority();
            classes()
        });
        assert_eq!(background.join().unwrap(), (libc::SCHED_IDLE, IOPRIO_CLASS_IDLE));
        assert_ne!(classes().0, libc::SCHED_IDLE);
    }
}
