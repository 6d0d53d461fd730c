require "editheader";
deleteheader "x-spam-status";
deleteheader "X-Spam-Flag";
