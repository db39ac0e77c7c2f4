# Runs the `postflight` block of a Homebrew cask file the way Homebrew does: evaluated in an
# object whose `system_command(executable, args:, must_succeed:, …)` runs the program and
# returns a result answering `success?` (Homebrew's Cask::DSL::Base and SystemCommand). The
# cask's other stanzas are read and ignored. `/bin/launchctl` is replaced by the double given.
#
#   ruby cask-postflight.rb CASK_FILE LAUNCHCTL_DOUBLE
require "open3"

cask_file, launchctl = ARGV

# The stanzas Homebrew's DSL takes; only postflight is kept.
class CaskStanzas
  attr_reader :postflight_block

  def postflight(&block)
    @postflight_block = block
  end

  def method_missing(_name, *_args, **_options, &_block) = nil

  def respond_to_missing?(_name, _include_private = false) = true
end

# What a flight block sees.
class Flight
  Result = Struct.new(:status) do
    def success? = status.success?
  end

  def initialize(launchctl)
    @launchctl = launchctl
  end

  def system_command(executable, args: [], must_succeed: true, print_stderr: true, **_options)
    executable = @launchctl if executable == "/bin/launchctl"
    _out, err, status = Open3.capture3(executable, *args)
    warn err if print_stderr && !err.empty?
    raise "#{executable} #{args.join(" ")} failed: #{err}" if must_succeed && !status.success?

    Result.new(status)
  end

  def appdir = "/Applications"
end

$stanzas = CaskStanzas.new
def cask(_token, &block) = $stanzas.instance_eval(&block)

load cask_file
block = $stanzas.postflight_block or abort "#{cask_file} has no postflight block"
Flight.new(launchctl).instance_eval(&block)
