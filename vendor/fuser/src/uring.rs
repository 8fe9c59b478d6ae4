//! genro-storage patch: FUSE over io_uring (Linux 6.14+, `enable_uring`). One queue per
//! possible CPU, each an io_uring of 128-byte SQEs owned by one thread pinned to its CPU;
//! every entry of a queue is a request buffer (headers + payload) registered with
//! `FUSE_IO_URING_CMD_REGISTER` and answered with `FUSE_IO_URING_CMD_COMMIT_AND_FETCH`,
//! which commits the reply and waits for the entry's next request in one command.
//!
//! INIT, FORGET, INTERRUPT and notifications stay on /dev/fuse (the kernel sends them
//! there). A reply made on the queue's own thread (a request served inline) is only
//! queued: the thread's next `submit_and_wait` carries it and waits for the next request
//! in the same system call. A reply made on any other thread is queued and submitted at
//! once, under the queue's submission lock.
//!
//! A thread that submits a COMMIT_AND_FETCH must outlive the session: io_uring cancels a
//! thread's pending commands when it exits (the kernel's `fuse_uring_cancel` ends the
//! entry with ENOTCONN, and the queue loses that entry for good). Replies come from
//! the queue threads, the /dev/fuse threads and the filesystem's runtime workers, which all
//! do; never answer from a short-lived thread (a blocking pool's, say).
//!
//! The kernel's layout (include/uapi/linux/fuse.h, `struct fuse_uring_req_header`):
//! `in_out` (128 bytes: fuse_in_header / fuse_out_header), `op_in` (128 bytes: the
//! opcode's fixed argument), `ring_ent_in_out` (flags, commit_id, payload_sz). The rest
//! of a request's arguments (names, write data) are in the payload buffer, and every
//! argument of a reply goes there. fuser parses a request from one contiguous buffer, so
//! the header and the fixed argument are copied in front of the payload, into a page kept
//! free for them below it: the payload itself is never copied.

use std::cell::Cell;
use std::io;
use std::io::IoSlice;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU8;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use io_uring::IoUring;
use io_uring::opcode;
use io_uring::squeue::Entry128;
use io_uring::types;
use log::debug;
use log::error;
use log::warn;
use parking_lot::Mutex;

use crate::channel::ChannelSender;

const CMD_REGISTER: u32 = 1;
const CMD_COMMIT_AND_FETCH: u32 = 2;
/// `sizeof(struct fuse_in_header)`.
const IN_HEADER: usize = 40;
/// `sizeof(struct fuse_out_header)`.
const OUT_HEADER: usize = 16;
/// Offsets in `struct fuse_uring_req_header`.
const OP_IN: usize = 128;
const ENT_IN_OUT: usize = 256;
const HEADER_LEN: usize = 256 + 32;
/// Room below the payload for the request's header and fixed argument.
const PREFIX: usize = 4096;
/// The user data of the wake-up NOP that stops a queue.
const STOP: u64 = u64::MAX;

/// Which transport serves the session's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// The session has not decided yet (before its loop starts).
    Starting,
    /// Every request is read from and answered on /dev/fuse.
    DevFuse,
    /// Requests arrive on io_uring queues, one per CPU.
    IoUring,
}

/// A handle on the session's transport, readable from any thread: give one in
/// [`crate::Config`] and keep a clone.
#[derive(Debug, Clone, Default)]
pub struct TransportState(Arc<TransportInner>);

#[derive(Debug, Default)]
struct TransportInner {
    state: AtomicU8,
    ring_requests: AtomicU64,
}

impl PartialEq for TransportState {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for TransportState {}

impl TransportState {
    /// Requests that came on the io_uring queues so far.
    pub fn ring_requests(&self) -> u64 {
        self.0.ring_requests.load(Ordering::Relaxed)
    }

    /// The transport now in use.
    pub fn get(&self) -> Transport {
        match self.0.state.load(Ordering::Acquire) {
            1 => Transport::DevFuse,
            2 => Transport::IoUring,
            _ => Transport::Starting,
        }
    }

    pub(crate) fn set(&self, t: Transport) {
        let v = match t {
            Transport::Starting => 0,
            Transport::DevFuse => 1,
            Transport::IoUring => 2,
        };
        self.0.state.store(v, Ordering::Release);
    }
}

/// What the kernel agreed to at INIT, for the queues' buffers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Params {
    pub(crate) depth: u16,
    /// At least the kernel's `max_payload_sz`: max(8 KiB, max_write, max_pages pages).
    pub(crate) payload: usize,
}

/// An anonymous private mapping, unmapped on drop.
#[derive(Debug)]
struct Map {
    ptr: NonNull<u8>,
    len: usize,
}

impl Map {
    fn new(len: usize) -> io::Result<Map> {
        // SAFETY: an anonymous mapping with no address hint; checked for failure.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Map {
            ptr: NonNull::new(p.cast()).expect("mmap gave NULL"),
            len,
        })
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: ptr and len are the mapping made in `new`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// One registered request buffer. Who touches its memory is handed over in turn: the
/// kernel from the submission of its command until that command's completion, then the
/// queue thread while it parses and dispatches, then the one reply until it is submitted.
#[derive(Debug)]
struct Ent {
    header: Map,
    /// `PREFIX` bytes, then the payload the kernel sees.
    payload: Map,
    iov: Box<[libc::iovec; 2]>,
    /// The command last submitted, to resubmit it after EAGAIN or EINTR.
    last: AtomicU8,
    commit_id: AtomicU64,
}

impl Ent {
    fn new(payload: usize) -> io::Result<Ent> {
        let header = Map::new(4096)?;
        let payload_map = Map::new(PREFIX + payload)?;
        let iov = Box::new([
            libc::iovec {
                iov_base: header.ptr.as_ptr().cast(),
                iov_len: HEADER_LEN,
            },
            libc::iovec {
                // SAFETY: PREFIX is inside the mapping.
                iov_base: unsafe { payload_map.ptr.as_ptr().add(PREFIX) }.cast(),
                iov_len: payload,
            },
        ]);
        Ok(Ent {
            header,
            payload: payload_map,
            iov,
            last: AtomicU8::new(0),
            commit_id: AtomicU64::new(0),
        })
    }

    fn header(&self) -> *mut u8 {
        self.header.ptr.as_ptr()
    }

    fn payload(&self) -> *mut u8 {
        // SAFETY: PREFIX is inside the mapping.
        unsafe { self.payload.ptr.as_ptr().add(PREFIX) }
    }
}

/// One CPU's queue.
pub(crate) struct Queue {
    qid: u16,
    fd: i32,
    ring: IoUring<Entry128>,
    /// Serialises every access to the submission side of `ring`.
    sq: Mutex<()>,
    ents: Box<[Ent]>,
    payload: usize,
    stop: AtomicBool,
    state: TransportState,
    /// For passthrough backing ids, which are ioctls on /dev/fuse.
    pub(crate) dev: ChannelSender,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").field("qid", &self.qid).finish()
    }
}

// SAFETY: the entries' raw memory is handed over between threads as `Ent` describes; the
// ring's submission side is behind `sq`, its completion side is read by the queue thread
// only.
unsafe impl Send for Queue {}
unsafe impl Sync for Queue {}

thread_local! {
    /// The queue whose thread this is, if any.
    static ON_QUEUE: Cell<*const Queue> = const { Cell::new(std::ptr::null()) };
}

impl Queue {
    fn new(
        qid: u16,
        dev: &ChannelSender,
        fd: i32,
        p: Params,
        state: &TransportState,
    ) -> io::Result<Queue> {
        let depth = u32::from(p.depth);
        // (COOP_TASKRUN, and SINGLE_ISSUER with DEFER_TASKRUN, measured no faster here:
        // BENCHMARKS.md; libfuse found them slower)
        let ring = IoUring::<Entry128>::builder()
            .setup_cqsize(2 * (depth + 1))
            .setup_submit_all()
            .build(depth + 1)?;
        let ents = (0..p.depth)
            .map(|_| Ent::new(p.payload))
            .collect::<io::Result<Vec<_>>>()?
            .into_boxed_slice();
        Ok(Queue {
            qid,
            fd,
            ring,
            sq: Mutex::new(()),
            ents,
            payload: p.payload,
            stop: AtomicBool::new(false),
            state: state.clone(),
            dev: dev.clone(),
        })
    }

    /// The SQE of `cmd` for entry `idx`.
    fn sqe(&self, idx: usize, cmd: u32) -> Entry128 {
        let ent = &self.ents[idx];
        let mut req = [0u8; 80];
        if cmd == CMD_COMMIT_AND_FETCH {
            req[8..16].copy_from_slice(&ent.commit_id.load(Ordering::Relaxed).to_ne_bytes());
        }
        req[16..18].copy_from_slice(&self.qid.to_ne_bytes());
        let mut op = opcode::UringCmd80::new(types::Fd(self.fd), cmd).cmd(req);
        if cmd == CMD_REGISTER {
            op = op.addr(Some(ent.iov.as_ptr() as u64));
        }
        let e = op.build().user_data(idx as u64);
        if cmd != CMD_REGISTER {
            return e;
        }
        // The crate has no setter for `sqe->len`, which REGISTER needs (the number of
        // iovecs: header and payload). It is the u32 at offset 24 of the SQE.
        // SAFETY: Entry128 is repr(C) and exactly the 128 bytes of an SQE128.
        let mut raw: [u8; 128] = unsafe { std::mem::transmute(e) };
        raw[24..28].copy_from_slice(&2u32.to_ne_bytes());
        // SAFETY: as above; every byte pattern is a valid SQE for the crate.
        unsafe { std::mem::transmute::<[u8; 128], Entry128>(raw) }
    }

    /// Queue `e`; submit it too unless this is the queue's own thread (whose next wait
    /// submits it).
    fn push(&self, e: &Entry128) -> io::Result<()> {
        let own = ON_QUEUE.with(|q| std::ptr::eq(q.get(), self));
        let _g = self.sq.lock();
        // SAFETY: the only SubmissionQueue of this ring exists under `sq`.
        let mut sq = unsafe { self.ring.submission_shared() };
        // SAFETY: the entry points at memory that lives as long as the queue.
        if unsafe { sq.push(e) }.is_err() {
            // one SQE per entry plus the stop NOP: the queue cannot be full
            return Err(io::Error::other("io_uring submission queue full"));
        }
        drop(sq);
        if !own {
            self.ring.submitter().submit()?;
        }
        Ok(())
    }

    fn submit_cmd(&self, idx: usize, cmd: u32) -> io::Result<()> {
        self.ents[idx].last.store(cmd as u8, Ordering::Relaxed);
        self.push(&self.sqe(idx, cmd))
    }

    /// Ask the queue's thread to end (a NOP that wakes its wait).
    fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        let nop: Entry128 = opcode::Nop::new().build().user_data(STOP).into();
        if let Err(e) = self.push(&nop) {
            warn!("io_uring queue {}: cannot wake to stop: {e}", self.qid);
        }
    }

    /// Answer entry `idx`'s request with `data` (fuse_out_header, then the arguments).
    fn reply(&self, idx: usize, data: &[IoSlice<'_>]) -> io::Result<()> {
        let ent = &self.ents[idx];
        let total: usize = data.iter().map(|s| s.len()).sum();
        // SAFETY: this reply owns the entry's buffers until it submits (see `Ent`).
        let header = unsafe { std::slice::from_raw_parts_mut(ent.header(), HEADER_LEN) };
        let payload = unsafe { std::slice::from_raw_parts_mut(ent.payload(), self.payload) };
        let result = if total < OUT_HEADER || total - OUT_HEADER > self.payload {
            // never made by fuser's replies; answer EIO rather than hang the caller
            error!("io_uring reply of {total} bytes does not fit {}", self.payload);
            let mut h = [0u8; OUT_HEADER];
            data[0]
                .get(..OUT_HEADER)
                .map(|b| h.copy_from_slice(b))
                .unwrap_or_default();
            header[..OUT_HEADER].copy_from_slice(&h);
            header[4..8].copy_from_slice(&(-libc::EIO).to_ne_bytes());
            0usize
        } else {
            let mut at = 0usize;
            for s in data {
                let mut b: &[u8] = s;
                if at < OUT_HEADER {
                    let n = (OUT_HEADER - at).min(b.len());
                    header[at..at + n].copy_from_slice(&b[..n]);
                    at += n;
                    b = &b[n..];
                }
                let off = at - OUT_HEADER;
                payload[off..off + b.len()].copy_from_slice(b);
                at += b.len();
            }
            total - OUT_HEADER
        };
        header[ENT_IN_OUT + 16..ENT_IN_OUT + 20].copy_from_slice(&(result as u32).to_ne_bytes());
        self.submit_cmd(idx, CMD_COMMIT_AND_FETCH)
    }
}

/// The reply of one request that came on a ring.
#[derive(Debug, Clone)]
pub(crate) struct RingReply {
    pub(crate) queue: Arc<Queue>,
    idx: usize,
}

impl RingReply {
    pub(crate) fn send(&self, data: &[IoSlice<'_>]) -> io::Result<()> {
        self.queue.reply(self.idx, data)
    }
}

/// The queues and their threads.
#[derive(Debug)]
pub(crate) struct Pool {
    queues: Vec<Arc<Queue>>,
    threads: Vec<JoinHandle<()>>,
}

/// How a queue thread hands a request on: the request's bytes (header, fixed argument,
/// payload: one contiguous buffer) and where its reply goes.
pub(crate) trait Dispatch: Send + 'static {
    fn dispatch(&mut self, data: &[u8], reply: RingReply);
}

impl Pool {
    /// Make one queue per possible CPU and start its thread, which registers its entries
    /// (so that the kernel delivers their requests to that thread). `dispatcher(qid)` gives
    /// each thread its dispatcher. A registration the kernel refuses ends that queue; the
    /// kernel uses the rings only once every queue has an entry registered, and serves
    /// /dev/fuse until then.
    pub(crate) fn start<D: Dispatch>(
        dev: &ChannelSender,
        fd: &impl AsRawFd,
        p: Params,
        state: &TransportState,
        mut dispatcher: impl FnMut(u16) -> D,
    ) -> io::Result<Pool> {
        let n = possible_cpus()?;
        let mut queues = Vec::with_capacity(n);
        for qid in 0..n {
            let qid = u16::try_from(qid).map_err(|_| io::Error::other("too many CPUs"))?;
            queues.push(Arc::new(Queue::new(qid, dev, fd.as_raw_fd(), p, state)?));
        }
        let mut pool = Pool {
            queues: queues.clone(),
            threads: Vec::new(),
        };
        for q in queues {
            let d = dispatcher(q.qid);
            let t = std::thread::Builder::new()
                .name(format!("fuser-uring-{}", q.qid))
                .spawn(move || queue_loop(&q, d));
            match t {
                Ok(t) => pool.threads.push(t),
                Err(e) => {
                    pool.stop();
                    return Err(e);
                }
            }
        }
        Ok(pool)
    }

    /// Stop every queue and join its thread.
    pub(crate) fn stop(&mut self) {
        for q in &self.queues {
            q.stop();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The CPUs the kernel may bring online (`/sys/devices/system/cpu/possible`): one io_uring
/// queue is made for each.
pub fn possible_cpus() -> io::Result<usize> {
    // "0-1", "0", "0-3,8-11": the kernel makes one queue per possible CPU
    let s = std::fs::read_to_string("/sys/devices/system/cpu/possible")?;
    let mut max = 0usize;
    for part in s.trim().split(',') {
        let last = part.rsplit('-').next().unwrap_or(part);
        let v: usize = last
            .parse()
            .map_err(|_| io::Error::other(format!("cannot read possible CPUs from {s:?}")))?;
        max = max.max(v);
    }
    Ok(max + 1)
}

fn pin_to(cpu: u16) {
    // SAFETY: a zeroed cpu_set_t with one bit set, for this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(usize::from(cpu), &mut set);
        if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) != 0 {
            debug!(
                "io_uring queue {cpu}: cannot pin to its CPU: {}",
                io::Error::last_os_error()
            );
        }
    }
}

fn queue_loop<D: Dispatch>(q: &Arc<Queue>, mut d: D) {
    pin_to(q.qid);
    ON_QUEUE.with(|c| c.set(Arc::as_ptr(q)));
    let mut live = q.ents.len();
    for idx in 0..q.ents.len() {
        // queued only: the first wait below submits them
        if let Err(e) = q.submit_cmd(idx, CMD_REGISTER) {
            error!("io_uring queue {}: register: {e}", q.qid);
            return;
        }
    }
    let mut scratch: Vec<u64> = Vec::new();
    'outer: while live > 0 && !q.stop.load(Ordering::Acquire) {
        // submits the replies this thread queued, and waits for the next request
        match q.ring.submitter().submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
            Err(e) => {
                error!("io_uring queue {}: {e}; the queue stops", q.qid);
                break;
            }
        }
        loop {
            // SAFETY: only this thread reads the completion queue.
            let next = unsafe { q.ring.completion_shared() }.next();
            let Some(cqe) = next else { break };
            let data = cqe.user_data();
            if data == STOP {
                break 'outer;
            }
            let idx = data as usize;
            let res = cqe.result();
            if res == -libc::EAGAIN || res == -libc::EINTR {
                let last = u32::from(q.ents[idx].last.load(Ordering::Relaxed));
                if let Err(e) = q.submit_cmd(idx, last) {
                    error!("io_uring queue {}: resubmit: {e}", q.qid);
                    live -= 1;
                }
                continue;
            }
            if res < 0 {
                // ENOTCONN: the connection ended (unmount, abort)
                if res != -libc::ENOTCONN {
                    // a refused registration: the kernel goes on serving /dev/fuse
                    if q.ents[idx].last.load(Ordering::Relaxed) == CMD_REGISTER as u8 {
                        q.state.set(Transport::DevFuse);
                    }
                    error!(
                        "io_uring queue {} entry {idx}: {}",
                        q.qid,
                        io::Error::from_raw_os_error(-res)
                    );
                }
                live -= 1;
                continue;
            }
            handle(q, idx, &mut d, &mut scratch);
        }
    }
    ON_QUEUE.with(|c| c.set(std::ptr::null()));
    debug!("io_uring queue {} ends", q.qid);
}

/// Rebuild entry `idx`'s request as one buffer and dispatch it.
fn handle<D: Dispatch>(q: &Arc<Queue>, idx: usize, d: &mut D, scratch: &mut Vec<u64>) {
    let ent = &q.ents[idx];
    // SAFETY: the kernel completed this entry's command: its buffers are this thread's.
    let header = unsafe { std::slice::from_raw_parts(ent.header(), HEADER_LEN) };
    let u32_at = |o: usize| u32::from_ne_bytes(header[o..o + 4].try_into().unwrap());
    let len = u32_at(0) as usize;
    let commit_id = u64::from_ne_bytes(header[ENT_IN_OUT + 8..ENT_IN_OUT + 16].try_into().unwrap());
    let payload_sz = u32_at(ENT_IN_OUT + 16) as usize;
    ent.commit_id.store(commit_id, Ordering::Relaxed);
    q.state.0.ring_requests.fetch_add(1, Ordering::Relaxed);
    let reply = RingReply {
        queue: q.clone(),
        idx,
    };
    let op = len.checked_sub(IN_HEADER + payload_sz);
    let Some(op) = op.filter(|&o| o <= 128 && payload_sz <= q.payload) else {
        error!(
            "io_uring queue {}: request of {len} bytes with a payload of {payload_sz}: answered EIO",
            q.qid
        );
        let mut out = [0u8; OUT_HEADER];
        out[0..4].copy_from_slice(&(OUT_HEADER as u32).to_ne_bytes());
        out[4..8].copy_from_slice(&(-libc::EIO).to_ne_bytes());
        out[8..16].copy_from_slice(&header[8..16]);
        let _ = reply.send(&[IoSlice::new(&out)]);
        return;
    };
    let front = IN_HEADER + op;
    if front % 8 == 0 {
        // SAFETY: the PREFIX bytes below the payload belong to this entry.
        let buf = unsafe {
            let start = ent.payload().sub(front);
            std::ptr::copy_nonoverlapping(header.as_ptr(), start, IN_HEADER);
            std::ptr::copy_nonoverlapping(header.as_ptr().add(OP_IN), start.add(IN_HEADER), op);
            std::slice::from_raw_parts(start, front + payload_sz)
        };
        d.dispatch(buf, reply);
    } else {
        // an argument size no opcode has today: an aligned copy
        let n = front + payload_sz;
        scratch.clear();
        scratch.resize(n.div_ceil(8), 0);
        // SAFETY: scratch holds at least n bytes; the sources are this entry's.
        let buf = unsafe {
            let dst = scratch.as_mut_ptr().cast::<u8>();
            std::ptr::copy_nonoverlapping(header.as_ptr(), dst, IN_HEADER);
            std::ptr::copy_nonoverlapping(header.as_ptr().add(OP_IN), dst.add(IN_HEADER), op);
            std::ptr::copy_nonoverlapping(ent.payload(), dst.add(front), payload_sz);
            std::slice::from_raw_parts(dst, n)
        };
        d.dispatch(buf, reply);
    }
}
