#include "recorder/preflight.h"

#include <bpf/libbpf.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "recorder/record_error.h"

namespace heaptrail::recorder {
namespace {

bool hasCapability(const __user_cap_data_struct (&data)[2], int cap) {
  return (data[cap / 32].effective & (1u << (cap % 32))) != 0;
}

}  // namespace

void checkPrivilegesAndKernel() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (::syscall(SYS_capget, &header, data) == 0) {
    const bool admin = hasCapability(data, CAP_SYS_ADMIN);
    const bool bpf = admin || hasCapability(data, CAP_BPF);
    const bool perfmon = admin || hasCapability(data, CAP_PERFMON);
    if (!bpf || !perfmon)
      throw RecordError(
          "not privileged: recording needs CAP_BPF and CAP_PERFMON (or root); run it with sudo "
          "or grant them with `setcap cap_bpf,cap_perfmon,cap_sys_ptrace+ep heaptrail-record`");
  }
  if (libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, nullptr) != 1)
    throw RecordError("this kernel has no BPF ring buffer (BPF_MAP_TYPE_RINGBUF, Linux 5.8 or newer)");
}

}  // namespace heaptrail::recorder
