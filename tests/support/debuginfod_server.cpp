#include "tests/support/debuginfod_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>
#include <vector>

#include "common/unique_fd.h"

namespace heaptrail::testing {

namespace {

using common::UniqueFd;

// A port nobody listens on now (the kernel's choice for port 0).
int freePort() {
  UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(addr);
  if (!s || ::bind(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(s.get(), reinterpret_cast<sockaddr*>(&addr), &length) != 0)
    return -1;
  return ntohs(addr.sin_port);
}

// The body of GET `path` on localhost:port, nullopt when nothing answers.
std::optional<std::string> httpGet(int port, const std::string& path) {
  UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (!s || ::connect(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return std::nullopt;
  const std::string request = "GET " + path + " HTTP/1.0\r\nHost: localhost\r\n\r\n";
  if (::write(s.get(), request.data(), request.size()) != static_cast<ssize_t>(request.size())) return std::nullopt;
  std::string response;
  char buffer[4096];
  ssize_t got;
  while ((got = ::read(s.get(), buffer, sizeof(buffer))) > 0) response.append(buffer, static_cast<size_t>(got));
  const auto body = response.find("\r\n\r\n");
  if (body == std::string::npos) return std::nullopt;
  return response.substr(body + 4);
}

long metric(const std::string& metrics, const std::string& name) {
  const std::regex line("(^|\n)" + std::regex_replace(name, std::regex(R"([{}"])"), R"(\$&)") + R"( (\d+))");
  std::smatch m;
  return std::regex_search(metrics, m, line) ? std::stol(m[2]) : -1;
}

}  // namespace

DebuginfodServer::DebuginfodServer(const std::filesystem::path& served, const std::filesystem::path& work,
                                   unsigned files) {
  const std::string binary = "/usr/bin/debuginfod";
  if (::access(binary.c_str(), X_OK) != 0) {
    error_ = binary + " is not installed (Debian package debuginfod; tools/setup.sh installs it)";
    return;
  }
  const int port = freePort();
  if (port < 0) {
    error_ = "no free TCP port on localhost";
    return;
  }
  const std::string log = (work / "debuginfod.log").string();
  std::vector<std::string> argv = {binary, "-F", "-p", std::to_string(port), "-d", (work / "db.sqlite").string(),
                                   served.string()};
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  url_ = "http://127.0.0.1:" + std::to_string(port);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    int status;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      std::ifstream in(log);
      std::stringstream text;
      text << in.rdbuf();
      error_ = "debuginfod exited before serving: " + text.str();
      return;
    }
    if (auto metrics = httpGet(port, "/metrics")) {
      if (metric(*metrics, R"(scanned_files_total{source="file"})") >= static_cast<long>(files) &&
          metric(*metrics, R"(thread_work_pending{role="scan"})") == 0)
        return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling a condition, not a handshake
  }
  error_ = "debuginfod did not index " + std::to_string(files) + " files of " + served.string() + " within 60 s";
}

DebuginfodServer::~DebuginfodServer() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  int status;
  ::waitpid(pid_, &status, 0);
}

ScopedEnv::ScopedEnv(const char* name, const std::string& value) : name_(name) {
  if (const char* old = std::getenv(name)) previous_ = old;
  ::setenv(name, value.c_str(), 1);
}

ScopedEnv::~ScopedEnv() {
  if (previous_)
    ::setenv(name_, previous_->c_str(), 1);
  else
    ::unsetenv(name_);
}

}  // namespace heaptrail::testing
