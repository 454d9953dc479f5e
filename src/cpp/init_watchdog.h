// Ends this process when a blocking call does not return in time. For MPI_Init, which
// waits for every rank of the job holding the GIL (so no Python thread can time it): a
// rank that failed before its MPI_Init would leave the others there for ever. On the
// deadline the watchdog says why on stderr, unlinks the shared-memory files this process
// maps under a prefix (MPICH's, which nobody would remove), and _exit(1)s.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unistd.h>

namespace mpiray {

class InitWatchdog {
public:
    void start(double timeout_s, std::string message, std::string prefix) {
        stop();
        std::lock_guard<std::mutex> lock(mu_);
        stopped_ = false;
        thread_ = std::thread([this, timeout_s, message = std::move(message), prefix = std::move(prefix)] {
            std::unique_lock<std::mutex> lock(mu_);
            if (cv_.wait_for(lock, std::chrono::duration<double>(timeout_s), [this] { return stopped_; }))
                return;
            if (!message.empty()) {
                ssize_t unused = write(2, message.data(), message.size());
                (void)unused;
            }
            UnlinkMapped(prefix);
            _exit(1);
        });
    }

    void stop() {
        {
            std::lock_guard<std::mutex> lock(mu_);
            stopped_ = true;
        }
        cv_.notify_all();
        if (thread_.joinable()) thread_.join();
    }

    ~InitWatchdog() { stop(); }

    // The files this process maps whose path starts with prefix, unlinked (the mappings
    // stay valid until unmapped); how many.
    static int UnlinkMapped(const std::string& prefix) {
        if (prefix.empty()) return 0;
        std::ifstream maps("/proc/self/maps");
        std::set<std::string> paths;
        for (std::string line; std::getline(maps, line);) {
            size_t at = line.find(prefix);
            if (at != std::string::npos) paths.insert(line.substr(at));
        }
        int n = 0;
        for (const auto& p : paths) n += unlink(p.c_str()) == 0;
        return n;
    }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    bool stopped_ = true;
    std::thread thread_;
};

}  // namespace mpiray
