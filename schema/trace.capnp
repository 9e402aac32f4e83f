# heaptrail trace format, schema version 3 (version 1 and 2 traces stay readable).
#
# This file is a public contract: traces written today must stay readable by every
# later heaptrail. Rules for changing it:
#   * only add fields (with new ordinals) and enum values; never renumber, retype or
#     remove anything;
#   * bump `currentSchemaVersion` when a reader needs to know about a change;
#   * a reader refuses traces whose `Header.schemaVersion` is newer than it knows.
#
# File layout (".htr"):
#   1. a zstd *skippable frame* (magic 0x184D2A50, little endian length) whose payload
#      is the 16 bytes "heaptrail-trace\0": it identifies the file and lets plain
#      `zstd -d` decompress the rest;
#   2. a sequence of ordinary zstd frames (content checksum on), each holding exactly
#      one Cap'n Proto message in standard (unpacked) stream framing whose root is a
#      `Record`;
#   3. the first record is a `header`; then any number of `chunk`s; then, if the
#      recording ended cleanly, one `footer`. A file that ends without a footer was
#      cut off (SIGKILL, power loss, full disk): every complete frame before the cut
#      is still valid.
#
# Versions: 1 stores events in `Chunk.events` (a column per field, fixed width). 2 stores
# them in `Chunk.packed` (PackedEvents: byte streams of varints that encode what is
# predictable instead of storing it), with times in `Header.timeResolutionNs`; readers
# of version 2 read both. 3 writes `PackedEvents` in `coding` 1 (what a release names,
# what an allocation reuses and the info definitions coded more tightly); readers of
# version 3 read every version and coding.
#
# Times are nanoseconds of the clock named in `Header.clock` (CLOCK_MONOTONIC on
# Linux, the clock of bpf_ktime_get_ns); `Header.wallClockAnchor` converts them to
# wall-clock time.

@0xcf326e8a9ac7acb5;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("heaptrail::schema");

const currentSchemaVersion :UInt32 = 3;

struct Record {
  union {
    header @0 :Header;
    chunk @1 :Chunk;
    footer @2 :Footer;
  }
}

enum Clock {
  monotonic @0;   # CLOCK_MONOTONIC (bpf_ktime_get_ns); does not advance in suspend
}

struct WallClockAnchor {
  # One reading of both clocks taken back to back at recording start:
  # wall time of t = realtimeNs + (t - clockNs).
  clockNs @0 :UInt64;      # reading of `Header.clock`
  realtimeNs @1 :UInt64;   # CLOCK_REALTIME, ns since the Unix epoch
}

struct Target {
  # A process the recording was asked to follow.
  pid @0 :UInt32;
  commandLine @1 :List(Text);   # argv as started (`-- cmd`) or read from /proc/PID/cmdline
  startedByRecorder @2 :Bool;   # true for `-- cmd`: recorded from its exec onwards
}

struct RecorderOptions {
  # The options the recorder ran with, so an analysis knows what was filtered out.
  allocatorObject @0 :Text;    # path of the ELF whose allocator functions were probed
  minSize @1 :UInt64;          # allocations smaller than this were not recorded (0: none)
  maxSize @2 :UInt64;          # allocations larger than this were not recorded (0: no limit)
  stackDepth @3 :UInt32;       # user stack frames captured per allocation (at most)
  ringBufferBytes @4 :UInt64;  # size of the BPF ring buffer
  durationNs @5 :UInt64;       # --duration, 0 when none
  probedFunctions @6 :List(Text);  # symbols of the functions hooked (details: Chunk.functions)
  followForks @7 :Bool;        # children of the targets were recorded too
  customFunctions @8 :List(Text);  # --alloc-fn arguments, as given (SYMBOL=KIND)
  releaseStacks @9 :Bool;      # frees and deletes carry their stack (Events.stackId)
  stackMode @10 :Text;         # --stack-mode: "auto" (unwind tables from .eh_frame where a
                               # file has them, frame pointers elsewhere), "cfi" (tables
                               # only) or "fp" (frame pointers only); empty in traces of
                               # recorders before stack modes (frame pointers)
}

struct Header {
  schemaVersion @0 :UInt32;     # version of this schema the writer used
  recorderVersion @1 :Text;     # heaptrail version string of the recorder
  kernelRelease @2 :Text;       # uname -r of the recorded machine
  machine @3 :Text;             # uname -m (architecture), e.g. "x86_64", "aarch64"
  hostname @4 :Text;            # uname -n
  pageSize @5 :UInt32;          # bytes per page on the recorded machine
  clock @6 :Clock;              # clock of every timestamp in the trace
  wallClockAnchor @7 :WallClockAnchor;
  startTimeNs @8 :UInt64;       # when recording started (events may not precede it)
  targets @9 :List(Target);     # processes the recording was started for
  options @10 :RecorderOptions;
  kernel @11 :KernelInfo;       # set when kernel allocations were recorded (--kernel)
  timeResolutionNs @12 :UInt64; # version 2: event times are multiples of this (--time-resolution);
                                # 0 (version 1) means 1 ns. Order within a trace stays exact.
}

struct KernelInfo {
  # What a kernel recording (`heaptrail-record --kernel`) needs to be understood offline:
  # which tracepoints were recorded and how to symbolize kernel stacks without the
  # recorded machine. Kernel events are the kinds `kmalloc` to `percpuFree`.
  events @0 :List(Text);        # event groups recorded: "kmalloc", "cache", "page", "percpu"
  buildId @1 :Data;             # GNU build-id of the running kernel (/sys/kernel/notes),
                                # empty if unknown: matches a vmlinux with DWARF
  release @2 :Text;             # uname -r (also Header.kernelRelease)
  kptrRestrict @3 :Int32;       # /proc/sys/kernel/kptr_restrict at recording start, -1 if unreadable
  symbolsHidden @4 :Bool;       # /proc/kallsyms showed no addresses (kptr_restrict, or
                                # no CAP_SYSLOG): `symbols` is empty, kernel frames stay raw
  symbols @5 :KernelSymbols;    # snapshot of /proc/kallsyms
  modules @6 :List(KernelModule);  # loaded modules (/proc/modules) at recording start
  pageStructBytes @7 :UInt32;   # sizeof(struct page) (from the kernel's BTF): page events
                                # name pages by `struct page` pointer, consecutive pages
                                # are this many bytes apart
  kernelStackDepth @8 :UInt32;  # kernel frames captured per allocation (at most)
  userStacks @9 :Bool;          # kernel allocations made by a recorded process (-p, -- cmd)
                                # also carry that thread's user stack (see Stack)
  textStart @10 :UInt64;        # address of `_text` in the running kernel (kallsyms): with
                                # a vmlinux's own `_text` it gives the KASLR offset
}

struct KernelSymbols {
  # The text (function) symbols of /proc/kallsyms, in columns sorted by address; element
  # i of each list describes symbol i. Data symbols are left out.
  address @0 :List(UInt64);
  names @1 :Data;               # the names, each followed by a NUL byte, in order
  module @2 :List(UInt16);      # 0 = the kernel image, else 1 + index into KernelInfo.modules
}

struct KernelModule {
  name @0 :Text;
  base @1 :UInt64;              # load address of the module's core (0 if hidden)
  size @2 :UInt64;              # bytes of its core
  buildId @3 :Data;             # /sys/module/NAME/notes/.note.gnu.build-id, empty if unknown
}

enum EventKind {
  # Which allocator function produced the event; `address`/`size` meaning per kind.
  malloc @0;         # address = returned pointer, size = requested bytes
  calloc @1;         # address = returned pointer, size = nmemb * size
  realloc @2;        # return of realloc: address = new pointer (0 on failure), size = requested;
                     # the old pointer was released by the preceding `reallocRelease` of the same tid
  reallocarray @3;   # as realloc, size = nmemb * size
  posixMemalign @4;  # address = *memptr on success, size = requested
  alignedAlloc @5;   # address = returned pointer, size = requested
  memalign @6;       # address = returned pointer, size = requested
  valloc @7;         # address = returned pointer, size = requested
  pvalloc @8;        # address = returned pointer, size = requested (before rounding to pages)
  free @9;           # address = pointer passed to free, size = 0; recorded at entry
  reallocRelease @10;  # entry of realloc/reallocarray: address = old pointer (may be 0),
                       # size = requested new size; the pointer must be considered released
                       # unless the matching `realloc`/`reallocarray` returns 0 with size > 0
  mmap @11;          # anonymous mmap: address = start of the mapping, size = length
  munmap @12;        # munmap: address = start, size = length (may unmap part of an mmap); at entry
  operatorNew @13;        # C++ operator new (any variant): address = returned pointer, size = requested
  operatorNewArray @14;   # C++ operator new[] (any variant)
  operatorDelete @15;     # C++ operator delete (any variant): address = pointer released; at entry
  operatorDeleteArray @16;  # C++ operator delete[] (any variant)
  # Kernel allocations (--kernel, KernelInfo). pid/tid: the task that was running (for
  # allocations in interrupt context, whichever task was interrupted); stackId: the
  # kernel stack, innermost first, then the user stack of that task when it is a recorded
  # process. A kernel object may be released by any task: releases match allocations by
  # address alone, never by pid.
  kmalloc @17;         # kmem:kmalloc: address = object, size = bytes the slab object holds
                       # (bytes_alloc, at least the requested size; a krealloc that fits stays
                       # in place without an event, so this is what it can grow to)
  kmemCacheAlloc @18;  # kmem:kmem_cache_alloc: address = object, size = the cache's object size
  kfree @19;           # kmem:kfree: address = object released (from kmalloc or a kmem_cache);
                       # size = 0
  kmemCacheFree @20;   # kmem:kmem_cache_free: address = object released; size = 0
  pageAlloc @21;       # kmem:mm_page_alloc: address = `struct page` pointer of the first page,
                       # size = page size << order (KernelInfo.pageStructBytes apart per page)
  pageFree @22;        # kmem:mm_page_free: address = `struct page` pointer, size = page size <<
                       # order of the free, which may cover only part of an allocation (a
                       # split high-order block freed page by page)
  percpuAlloc @23;     # percpu:percpu_alloc_percpu: address = the per-CPU pointer, size = bytes
                       # over all CPUs (bytes_alloc; per CPU before Linux 6.2)
  percpuFree @24;      # percpu:percpu_free_percpu: address = the per-CPU pointer; size = 0
  libcFree @25;      # free() called by the C library's own code (recorded when the recorder
                     # knows libc's text, else as `free`): fclose, freeaddrinfo, ... release
                     # blocks of the program's; glibc's flush of a thread's malloc cache at
                     # thread exit releases blocks the program freed already (and the cache
                     # itself, never handed out). Releases the block at `address` if it is
                     # live; otherwise it is the allocator's own business, not a double free
                     # or a free of an unknown address. Older analyzers ignore it.
}

struct AllocatorFunction {
  # A function the recorder hooked. Events name it by `id` (`Events.function`), so a
  # report can say e.g. "operator new[](unsigned long, std::nothrow_t const&)" or
  # "pool_alloc". Several names at one address (glibc's memalign and aligned_alloc)
  # are hooked once, under the first name.
  id @0 :UInt16;        # > 0, unique in the trace
  symbol @1 :Text;      # ELF symbol name, mangled for C++
  kind @2 :EventKind;   # the kind of event its calls make
  object @3 :Text;      # path of the ELF object that defines it, as the target sees it
  custom @4 :Bool;      # hooked because of --alloc-fn
  # Where the uprobe sits (recorder/probe_sites.h): the recorder probes the first
  # instruction of the function that every call runs, that the kernel emulates rather
  # than single-steps, and where the arguments it reads are still known; its return
  # probe, if it has one, is on the same instruction. Traces written before these
  # fields existed read as 0 / "" / false: the entry.
  probeOffset @5 :UInt32;       # bytes from the symbol's first instruction (0: the entry)
  probeInstruction @6 :Text;    # the instruction probed, e.g. "push %r12", "jcc", "endbr64"
  probeEmulated @7 :Bool;       # the kernel emulates it (no out-of-line single step)
  symbolFileOffset @8 :UInt64;  # file offset of the symbol in `object`; the probe is at
                                # symbolFileOffset + probeOffset
  allocatorLibrary @9 :Bool;    # `object` is an allocator library of its own: a shared
                                # library other than libc that defines malloc and free
                                # (jemalloc, tcmalloc, mimalloc, preloaded or linked). What
                                # it allocates for itself (frame #0 in it) is reported as
                                # allocator-internal, not as the program's leak. Older
                                # traces read false.
}

struct Events {
  # A batch of events in columns; element i of every list describes event i. All lists
  # have the same length. Events are in delivery order, which respects causality for a
  # given address (a free is always before the allocation that reuses its memory);
  # timestamps of different threads can be slightly out of order.
  kind @0 :List(EventKind);
  timeDeltaNs @1 :List(Int64);  # time of event i minus time of event i-1; event 0 is
                                # relative to `Chunk.baseTimeNs`. Can be negative.
  pid @2 :List(UInt32);         # process (tgid) that made the call
  tid @3 :List(UInt32);         # thread that made the call
  address @4 :List(UInt64);     # see EventKind
  size @5 :List(UInt64);        # see EventKind
  stackId @6 :List(UInt32);     # id of the user stack (`Stack.id`); 0 = no stack captured
                                # (munmap, realloc's release, and frees/deletes unless
                                # RecorderOptions.releaseStacks)
  function @7 :List(UInt16);    # id of the function called (`AllocatorFunction.id`); 0 = unknown
}

struct Stack {
  # A distinct raw user stack, written once in the chunk where it is first used.
  id @0 :UInt32;                # > 0, unique in the trace
  frames @1 :List(UInt64);      # innermost first; frames[0] is the return address into
                                # the allocator's caller. Return addresses (all frames)
                                # point after the call instruction. Every frame is a
                                # return address into an executable mapping of the process.
  incomplete @2 :Bool;          # the walk stopped before the outermost frame (an address
                                # without unwind rules or mapping, a rule the walker cannot
                                # follow, unreadable stack memory): callers are missing.
                                # A stack cut at --stack-depth is not incomplete. False in
                                # traces of recorders before this field.
}

enum MappingSource {
  procMaps @0;    # read from /proc/PID/maps when recording started
  mmapEvent @1;   # an executable mapping created while recording (exec, dlopen, ...)
}

struct Mapping {
  # An executable file mapping of a process, valid from `timeNs` until another mapping
  # of the same process overlapping it appears (or the process exits).
  timeNs @0 :UInt64;            # when it was seen (procMaps) or created (mmapEvent)
  pid @1 :UInt32;
  start @2 :UInt64;             # first address
  end @3 :UInt64;               # one past the last address
  fileOffset @4 :UInt64;        # offset in the file of `start`
  path @5 :Text;                # as the kernel names it; "[vdso]" and the like for specials
  buildId @6 :Data;             # GNU build-id of the file, empty if unknown or none
  source @7 :MappingSource;
  executable @8 :Bool;          # PROT_EXEC
  inode @9 :UInt64;             # 0 if unknown
}

enum ProcessEventKind {
  exec @0;      # the process image was replaced (or is the initial image of `-- cmd`);
                # its mappings from before are gone
  exit @1;      # the process ended; see exitCode/signal when known
  fork @2;      # a new process (`pid`) was created by `parentPid`; it starts with a copy
                # of the parent's mappings (and, after a fork, of its heap)
}

struct ProcessEvent {
  timeNs @0 :UInt64;
  pid @1 :UInt32;
  kind @2 :ProcessEventKind;
  parentPid @3 :UInt32;             # fork only
  command @4 :Text;                 # exec: the new command name (comm)
  exitStatusKnown @5 :Bool;         # exit: true when the recorder saw the status
  exitCode @6 :Int32;               # exit: status passed to exit(), if not signalled
  signal @7 :Int32;                 # exit: terminating signal number, 0 if none
  coreDumped @8 :Bool;
  commandLine @9 :List(Text);       # exec: argv of the new image when the recorder could read it
}

struct LostEvents {
  # Events that the BPF side could not deliver (ring buffer full): they are not in the
  # trace. A lost `free` makes its allocation look leaked.
  kind @0 :EventKind;
  count @1 :UInt64;
}

struct Chunk {
  # One batch of the recording; the recorder writes one at least every second.
  sequence @0 :UInt64;          # 0, 1, 2, ... (a gap means chunks are missing)
  baseTimeNs @1 :UInt64;        # reference for the first event's time delta
  events @2 :Events;
  stacks @3 :List(Stack);       # stacks first referenced in this chunk
  mappings @4 :List(Mapping);   # mappings seen since the previous chunk, in time order
  processes @5 :List(ProcessEvent);  # process events since the previous chunk
  lost @6 :List(LostEvents);    # events lost since the previous chunk, by kind
  functions @7 :List(AllocatorFunction);  # functions first referenced in this chunk
  threadNames @8 :List(ThreadName);  # names of threads first seen, or seen renamed, in this chunk
  packed @9 :PackedEvents;      # version 2: the chunk's events (`events` is then empty)
}

struct PackedEvents {
  # Schema version 2: the events of a chunk as byte streams, one per field, each holding
  # one LEB128 varint per event (zigzag-encoded where signed), read in event order. A
  # chunk decodes on its own (with the stacks defined before it, as in version 1); only a
  # release may name an allocation of an earlier chunk (see `address`): when that chunk
  # is missing, the release's address is unknown, as a free whose allocation was lost.
  count @0 :UInt32;             # events in the chunk
  infos @1 :Data;               # coding 0: the infos defined in this chunk, in order of first use: per
                                # info the varints kind, size, stackId, function, allocates
                                # (1: events of this info with a nonzero address are
                                # numbered allocations and use the allocation coding of
                                # `address`, 0: the release coding). Like heaptrack's
                                # allocation infos, an info is what events share: kind,
                                # size (see EventKind), stack (Events.stackId) and function
                                # (Events.function). Infos belong to their chunk (a chunk
                                # defines every info it uses, so that it reads on its own):
                                # the k-th (from 0) gets the id k mod infoTableSize + 1 (the
                                # writer reuses ids, oldest first, when its bounded table
                                # is full). Coding 1: empty, the same definitions are in
                                # the columns infoKinds, infoSizes, infoStacks and
                                # infoFunctions.
  threads @2 :List(ThreadRef);  # the threads of this chunk, in order of first event
  firstAllocation @3 :UInt64;   # serial of the chunk's first numbered allocation: every
                                # event whose role allocates (EventRole Allocate,
                                # Reallocate, Map, and the kernel's allocations) with a
                                # nonzero address is numbered 0, 1, 2, ... over the trace
  info @4 :Data;                # per event: the id of its info (kind, size, stack, function);
                                # 0 = the next definition of `infos` (so an id can be
                                # redefined within a chunk)
  time @5 :Data;                # per event: zigzag delta, in `Header.timeResolutionNs` ticks,
                                # from the previous event's time (the first: from
                                # `Chunk.baseTimeNs`); times are rounded down to a tick
  thread @6 :Data;              # per event: index into `threads`; empty when there is one
  address @7 :Data;             # per event, by its info's `allocates`. Allocations: 0 =
                                # address 0 (failed); 1 = the previous allocation's address
                                # plus its glibc chunk size (size + 8 rounded up to 16, at
                                # least 32: the next block carved from the same heap top);
                                # 2 + r (r < 64) = the r-th latest release of this chunk
                                # of a block of the same chunk size
                                # (an allocator reusing a block just given back; only
                                # releases of blocks allocated in this chunk have a known
                                # size); 66 + zigzag(address -
                                # previous allocation's address) otherwise. Releases: 0 =
                                # address 0; odd 2 * zigzag(n - p) + 1 = the address of the
                                # allocation numbered n, p being the number the previous
                                # such release of this chunk named (firstAllocation - 1 at
                                # first), n no more than `allocationWindow` allocations
                                # back; even 2 + 2 * zigzag(address - previous even-coded
                                # release's address) otherwise. "Previous" values start at 0
                                # in every chunk. Coding 1 differs in three ways (below).
  allocationWindow @8 :UInt32;  # releases refer only to allocations at most this many back
  infoTableSize @9 :UInt32;     # see `infos`
  coding @10 :UInt32;           # how the streams are coded: 0 as above (schema version 2);
                                # 1 (schema version 3) as above except that
                                # * the infos are defined in columns (infoKinds, ...);
                                # * an allocation reusing "the r-th latest release of this
                                #   chunk of a block of the same chunk size" counts only the
                                #   releases whose block was not handed out again since
                                #   (the one it names leaves that list: an allocator that
                                #   reuses the latest block given back is always r = 0);
                                # * with releaseRanks = R > 0, a release's address code
                                #   1 + r (r < R) names the r-th newest block (from 0) of
                                #   the thread's recent blocks: the blocks numbered in this
                                #   chunk by the same thread state (see below), not yet
                                #   released in this chunk by a numbered release, at most
                                #   the R newest (an older one drops out); the odd codes
                                #   of coding 0 become 1 + R + 2 * zigzag(n - p) (p the
                                #   number the previous such release of the thread state
                                #   named; a release by rank does not change it) and the
                                #   even ones 2 + R + 2 * zigzag(delta). Every release that
                                #   names a number, either way, takes that block out of
                                #   its thread state's recent blocks. With R = 0 the
                                #   address codes are coding 0's.
                                # Thread states (coding 0 and 1): the k-th thread of
                                # `threads` (from 0) predicts from state min(k, 63).
  infoKinds @11 :Data;          # coding 1: per info definition, kind * 2 + allocates
  infoSizes @12 :Data;          # coding 1: per info definition, its size
  infoStacks @13 :Data;         # coding 1: per info definition, its stackId
  infoFunctions @14 :Data;      # coding 1: per info definition, its function
  releaseRanks @15 :UInt32;     # coding 1: R (at most 256), see `coding`
}

struct ThreadRef {
  pid @0 :UInt32;
  tid @1 :UInt32;
}

struct ThreadName {
  # The name (comm) a thread had when it made an event: kernel recordings see every
  # process on the machine, and this is how they are told apart offline.
  timeNs @0 :UInt64;            # time of the first event with this name
  pid @1 :UInt32;               # process (tgid)
  tid @2 :UInt32;
  name @3 :Text;                # comm: at most 15 bytes, as the kernel has it
}

enum EndReason {
  targetExited @0;   # every target process ended
  interrupted @1;    # SIGINT, SIGTERM or SIGHUP
  duration @2;       # --duration elapsed
  error @3;          # recording stopped because of an error (see errorMessage)
}

struct Footer {
  # Written when the recording ends cleanly. Totals cover the whole trace.
  endTimeNs @0 :UInt64;
  endReason @1 :EndReason;
  errorMessage @2 :Text;
  eventsTotal @3 :UInt64;       # events written
  stacksTotal @4 :UInt64;       # distinct stacks written
  chunksTotal @5 :UInt64;
  lost @6 :List(LostEvents);    # total lost events by kind
  uncompressedBytes @7 :UInt64; # bytes of Cap'n Proto before zstd, header to footer
  unwindTables @8 :UInt32;      # files whose unwind table was loaded into BPF maps
  unwindTableBytes @9 :UInt64;  # bytes of those tables' rows
  unwindMapBytes @10 :UInt64;   # kernel memory of the unwinding maps (rows and the
                                # pid -> mapping trie), approximate
}
